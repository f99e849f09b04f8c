//! A panic anywhere ends the process promptly (exit 101): the run is recorded `failed` /
//! `internal-error` with no stage left `running`, its stages are stopped, its lock is free and
//! `resume` continues it. The panic is injected with `CODEX_ORCHESTRATOR_TEST_PANIC=<stage id>`,
//! which only debug builds honour (the end-to-end tests run one).

use std::time::{Duration, Instant};

use crate::harness::{assert_valid_manifest, TestEnv};

/// `long` runs (only the first time) while `boom` starts and panics.
const CONFIG: &str = r#"{"pipelines":[{"id":"p","concurrency":2,"stages":[
  {"kind":"command","id":"long","dependsOn":[],"command":"[ -f long-started ] && exit 0; echo $$ > long.pid; touch long-started; sleep 300"},
  {"kind":"command","id":"wait","dependsOn":[],"command":"while [ ! -f long.pid ]; do sleep 0.05; done"},
  {"kind":"command","id":"boom","dependsOn":["wait"],"command":"touch boom-ran"}]}]}"#;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|state| state != 'Z')
    })
}

#[cfg(debug_assertions)]
#[test]
fn a_panic_ends_the_process_promptly_records_the_run_and_frees_the_lock() {
    let env = TestEnv::new()
        .config(CONFIG)
        .env("CODEX_ORCHESTRATOR_TEST_PANIC", "boom");
    let started = Instant::now();
    let out = env.cli(["start", "p", "--format", "json"]);
    let took = started.elapsed();
    assert_eq!(out.code, 101, "stderr: {}", out.stderr);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        out.stderr.contains("injected panic at `boom`")
            && out
                .stderr
                .contains("error: internal error: the runner panicked"),
        "{}",
        out.stderr
    );
    let id = env.only_run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "internal-error");
    let stages = m["commands"].as_array().expect("commands");
    assert!(
        stages.iter().all(|c| c["status"] != "running"),
        "no stage left running: {m:#}"
    );
    assert_eq!(m["commands"][0]["outcome"], "cancelled");
    assert!(!env.path().join("boom-ran").exists());
    // The stage the runner was running is stopped, not orphaned.
    let pid: i32 = std::fs::read_to_string(env.path().join("long.pid"))
        .expect("long.pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(!alive(pid), "the running stage ({pid}) must be stopped");
    // The lock is free: `status` sees no runner and `resume` takes the run over and ends it.
    let status = env.cli(["status", "--run", &id, "--format", "json"]);
    assert_eq!(status.json()["activity"]["runner_alive"], false);
    let env = env.unset("CODEX_ORCHESTRATOR_TEST_PANIC");
    let resumed = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(env.manifest(&id)["status"], "succeeded");
    assert!(env.path().join("boom-ran").exists());
}
