//! Signals to the runner: forwarded to stage groups, run recorded `cancelled`, exit 128+n,
//! no process left behind.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{assert_valid_manifest, Cgroup, TestEnv};

fn wait_for(path: &std::path::Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Running (a zombie waiting for a parent that does not reap, e.g. PID 1 in a container, is
/// dead: it holds no resources and runs no code).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|state| state != 'Z'),
        Err(_) => kill(Pid::from_raw(pid), None).is_ok(),
    }
}

fn cancel_with(sig: Signal, expected: i32) {
    // The stage records its own pid and a grandchild's, then waits; the grandchild ignores
    // nothing, the stage ignores SIGTERM (so the grace and SIGKILL path is exercised).
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"wait","command":"trap '' TERM; sleep 60 & echo $! > c.tmp; mv c.tmp child.pid; echo $$ > s.tmp; mv s.tmp stage.pid; wait"},
          {"kind":"command","id":"never","command":"touch never-ran"}]}]}"#)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "300");
    let cgroup = Cgroup::new(&format!("{sig}"));
    let mut cmd = match &cgroup {
        Some(cg) => cg.wrap(&env, &["start", "p", "--format", "json"]),
        None => env.command(["start", "p", "--format", "json"]),
    };
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&env.path().join("stage.pid"), Duration::from_secs(10));
    wait_for(&env.path().join("child.pid"), Duration::from_secs(10));
    let started = Instant::now();
    kill(Pid::from_raw(child.id() as i32), sig).expect("signal runner");
    let out = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "cancellation is prompt"
    );
    assert_eq!(
        out.status.code(),
        Some(expected),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(j["status"], "cancelled");
    let m = env.manifest(j["run_id"].as_str().expect("id"));
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["status_detail"], "run-canceled");
    assert_eq!(m["commands"][0]["status"], "failed");
    assert_eq!(m["commands"][0]["outcome"], "cancelled");
    assert_eq!(m["commands"][1]["status"], "pending");
    assert!(!env.path().join("never-ran").exists());
    let events = crate::harness::read_lines(
        &env.run_dir(j["run_id"].as_str().expect("id"))
            .join("events.jsonl"),
    );
    let cancelled = events
        .iter()
        .find(|e| e["event"] == "run_cancelled")
        .expect("a run_cancelled event");
    assert_eq!(cancelled["payload"]["signal"], format!("{sig}"));
    assert_eq!(
        cancelled["payload"]["interrupted"],
        serde_json::json!(["wait"])
    );
    if let Some(cg) = &cgroup {
        assert!(
            !cg.populated(),
            "cgroup still populated after the run: orphans survived"
        );
    }
    for f in ["stage.pid", "child.pid"] {
        let pid: i32 = std::fs::read_to_string(env.path().join(f))
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        assert!(!alive(pid), "{f} ({pid}) must be gone");
    }
}

#[test]
fn sigint_cancels_with_130() {
    cancel_with(Signal::SIGINT, 130);
}

#[test]
fn sigterm_cancels_with_143() {
    cancel_with(Signal::SIGTERM, 143);
}

#[test]
fn sighup_cancels_with_129() {
    cancel_with(Signal::SIGHUP, 129);
}

#[test]
fn background_grandchild_does_not_hang_the_run() {
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"bg","command":"sleep 30 & echo started"}]}]}"#);
    let start = Instant::now();
    let out = env.start("p", &[]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["commands"][0]["leaked_processes"], true);
}

#[test]
fn timeout_leaves_no_process_in_the_cgroup() {
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"t","command":"trap '' TERM; sleep 60 & sleep 60; wait","timeoutMs":300}]}]}"#)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "200");
    let Some(cg) = Cgroup::new("timeout") else {
        return;
    };
    let out = cg.wrap(&env, &["start", "p"]).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cg.populated(), "cgroup still populated after a timeout");
}

/// Starts `start p --format json` and waits until `marker` exists in the repo.
fn spawn_until(env: &TestEnv, marker: &str) -> std::process::Child {
    let child = env
        .command(["start", "p", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(&env.path().join(marker), Duration::from_secs(10));
    child
}

#[test]
fn second_ctrl_c_kills_at_once_without_waiting_for_the_grace() {
    // The stage ignores SIGTERM and the grace is 30 s: only the second SIGINT's immediate
    // SIGKILL can end the run promptly.
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"stubborn","command":"trap '' TERM INT; touch ready; while :; do sleep 0.05; done"}]}]}"#)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "30000");
    let child = spawn_until(&env, "ready");
    let runner = Pid::from_raw(child.id() as i32);
    kill(runner, Signal::SIGINT).expect("first SIGINT");
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    kill(runner, Signal::SIGINT).expect("second SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "the second Ctrl-C did not wait out the 30 s grace"
    );
    assert_eq!(out.status.code(), Some(130));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let m = env.manifest(j["run_id"].as_str().expect("id"));
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["commands"][0]["outcome"], "cancelled");
    assert_eq!(m["commands"][0]["signal"], "SIGKILL");
}

#[test]
fn ctrl_c_during_a_retry_delay_records_the_stage_as_interrupted() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"flaky","command":"touch tried; exit 1","retries":{"count":3,"delayMs":60000}}]}]}"#,
    );
    let child = spawn_until(&env, "tried");
    // The first attempt failed and the runner waits 60 s before the second one.
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    let run_id = j["run_id"].as_str().expect("id");
    let m = env.manifest(run_id);
    assert_eq!(m["status"], "cancelled");
    let stage = &m["commands"][0];
    assert_eq!(stage["status"], "failed");
    assert_eq!(stage["outcome"], "cancelled");
    assert_eq!(stage["attempts"], 1, "the second attempt never started");
    assert!(
        stage["summary"]
            .as_str()
            .expect("summary")
            .starts_with("Cancelled by SIGINT"),
        "{stage}"
    );
    let events = crate::harness::read_lines(&env.run_dir(run_id).join("events.jsonl"));
    let cancelled = events
        .iter()
        .find(|e| e["event"] == "run_cancelled")
        .expect("run_cancelled");
    assert_eq!(
        cancelled["payload"]["interrupted"],
        serde_json::json!(["flaky"])
    );
}
