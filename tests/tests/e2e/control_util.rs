//! Helpers of the run-control tests (approvals, control.json, budgets, run slots, locks): runs
//! in the background, waiting for a state, timestamps of the record.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::harness::{Run, TestEnv};

/// Generous: the machine is shared and the suite runs tests in parallel.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// The binary with `args`, in the background, output captured.
pub(crate) fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits for a background run and collects what it printed.
pub(crate) fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `f` until it gives a value; panics naming `what` after `limit`.
pub(crate) fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run's record as it is now, merged with its sidecar (`None` before it exists).
pub(crate) fn manifest_now(env: &TestEnv, id: &str) -> Option<Value> {
    shared_manifest::read_value(&env.run_dir(id).join("manifest.json")).ok()
}

/// The id of the one run under `.runs/0101/cli`, once it exists.
pub(crate) fn the_run(env: &TestEnv) -> String {
    wait_until("the run directory", LIMIT, || {
        let dir = std::fs::read_dir(env.path().join(".runs/0101/cli")).ok()?;
        let id = dir
            .flatten()
            .next()?
            .file_name()
            .to_string_lossy()
            .into_owned();
        manifest_now(env, &id).map(|_| id)
    })
}

/// Waits until `pred` holds for run `id`'s record; returns that record.
pub(crate) fn wait_for_record(
    env: &TestEnv,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, LIMIT, || manifest_now(env, id).filter(|m| pred(m)))
}

/// Waits until stage `index` (0-based) of run `id` waits for an approval decision.
pub(crate) fn awaiting_approval(env: &TestEnv, id: &str, index: usize) -> Value {
    wait_for_record(env, id, "the approval to wait", |m| {
        let c = &m["commands"][index];
        c["status"] == "running" && c["approval"]["state"] == "waiting"
    })
}

/// `kill -9`, reaped.
pub(crate) fn kill9(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

/// A timestamp of the record.
pub(crate) fn ts(v: &Value) -> SystemTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp, found {v}"));
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub(crate) fn ms_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Pids of the processes that carry `CODEX_ORCHESTRATOR_RUN_ID=<id>` (a run's stages and
/// everything they started), zombies left out.
pub(crate) fn processes_of_run(id: &str) -> Vec<i32> {
    let mark = format!("CODEX_ORCHESTRATOR_RUN_ID={id}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().and_then(|r| r.trim().chars().next()))
                .is_none_or(|state| state == 'Z');
            !zombie
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == mark.as_bytes()))
        })
        .collect()
}

/// Kills what is left of a run whose runner a test killed (its stages run on).
pub(crate) fn kill_leftovers(id: &str) {
    for pid in processes_of_run(id) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Event names of run `id`, in order.
pub(crate) fn events(env: &TestEnv, id: &str) -> Vec<Value> {
    crate::harness::read_lines(&env.run_dir(id).join("events.jsonl"))
}

/// `m` (a merged record of a run in `env`) validates against our superset schema, and the
/// run's files as written validate too: `manifest.json` against the peer's published schema,
/// unmodified, and the sidecar against ours.
pub(crate) fn assert_valid(env: &TestEnv, m: &Value) {
    crate::harness::assert_valid_manifest(m);
    let id = m["run_id"].as_str().expect("run_id");
    crate::harness::assert_valid_record_files(&env.run_dir(id));
}
