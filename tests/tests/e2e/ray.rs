//! Ray stages end to end: the real binary against a real single-node Ray head (started by
//! `.ci/run` with `.ci/ray-head.sh`; its address is `CODEX_ORCHESTRATOR_TEST_RAY_ADDRESS`).
//! Without that variable the tests print why and pass locally; under CI (`CI` set) they fail,
//! since CI must install Ray. The head-loss test starts a head of its own (it needs
//! `CODEX_ORCHESTRATOR_TEST_RAY_VENV`, the virtual env with Ray), so stopping it leaves the
//! shared head alone.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{assert_valid_manifest, assert_valid_record_files, read_lines, TestEnv};
use crate::ray_head::{job, jobs, Head};

/// The shared head's address, or `None` (printed) when there is none outside CI.
fn head() -> Option<String> {
    match std::env::var("CODEX_ORCHESTRATOR_TEST_RAY_ADDRESS") {
        Ok(a) if !a.trim().is_empty() => Some(a.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI is set but CODEX_ORCHESTRATOR_TEST_RAY_ADDRESS is not: .ci/run must install Ray and start a head"
        ),
        _ => {
            eprintln!("SKIPPED: Ray is not installed here (CODEX_ORCHESTRATOR_TEST_RAY_ADDRESS unset; .ci/run sets it)");
            None
        }
    }
}

/// A Ray executor on `address`, as config JSON (`extra` are more fields).
fn ray(address: &str, extra: &str) -> String {
    format!(r#"{{"kind":"ray","address":"{address}"{extra}}}"#)
}

/// One stream of one stage's log, reassembled from its `exec:chunk` events (of the attempt
/// with `correlation`, or of every attempt).
fn stream(log: &[Value], name: &str, correlation: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for c in log {
        if c["type"] != "exec:chunk" || c["stream"] != name {
            continue;
        }
        if correlation.is_some_and(|id| c["correlation_id"] != id) {
            continue;
        }
        let data = c["data"].as_str().expect("chunk data");
        if c["encoding"] == "base64" {
            out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .expect("base64"),
            );
        } else {
            out.extend_from_slice(data.as_bytes());
        }
    }
    out
}

fn stage_log(env: &TestEnv, run_id: &str, file: &str) -> Vec<Value> {
    read_lines(&env.run_dir(run_id).join("commands").join(file))
}

fn stage<'m>(m: &'m Value, id: &str) -> &'m Value {
    m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("stage {id} in {m}"))
}

/// Checks the `executor` record of a Ray stage and returns its submission id.
fn assert_ray_record(m: &Value, id: &str, address: &str, status: &str) -> String {
    let run_id = m["run_id"].as_str().expect("run id");
    let e = &stage(m, id)["executor"];
    assert_eq!(e["kind"], "ray", "{e}");
    assert_eq!(e["address"], address);
    assert_eq!(e["status"], status, "{e}");
    let sid = e["submission_id"].as_str().expect("submission id");
    assert!(sid.starts_with(&format!("{run_id}--{id}--")), "{sid}");
    assert_eq!(e["node"].as_str().map(str::len), Some(56), "{e}");
    assert_eq!(
        e["working_dir_sha256"].as_str().map(str::len),
        Some(64),
        "{e}"
    );
    sid.to_owned()
}

#[test]
fn mixed_dag_local_then_two_ray_stages_in_parallel_then_local() {
    let Some(address) = head() else { return };
    // `prep` (local) writes a file into the working dir the Ray stages ship; both Ray stages
    // print bytes that are not UTF-8 on stdout and text on stderr, and sleep, so that they
    // overlap; `post` (local) runs after both.
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","concurrency":3,"executor":{exec},"stages":[
          {{"kind":"command","id":"prep","executor":{{"kind":"local"}},"command":"mkdir -p app && printf 'from prep\n' > app/made.txt"}},
          {{"kind":"command","id":"left","dependsOn":["prep"],"command":"cat made.txt; printf 'L\\377\\376\\000'; echo left-err >&2; sleep 2; printf tail"}},
          {{"kind":"command","id":"right","dependsOn":["prep"],"env":{{"WHO":"right"}},"command":"printf \"$WHO\\300\\n\"; echo right-err >&2; sleep 2"}},
          {{"kind":"command","id":"post","dependsOn":["left","right"],"executor":{{"kind":"local"}},"command":"echo post"}}]}}]}}"#,
        exec = ray(&address, r#","workingDir":"app","numCpus":0.5"#),
    );
    let env = TestEnv::new().config(&config);
    std::fs::create_dir_all(env.path().join("app")).expect("app");
    let r = env.start("p", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_valid_record_files(&env.run_dir(&id));
    for s in ["prep", "left", "right", "post"] {
        assert_eq!(stage(&m, s)["status"], "succeeded", "{s}");
    }
    // Local stages carry no executor record; Ray stages do, in the sidecar only.
    assert!(stage(&m, "prep").get("executor").is_none());
    assert!(stage(&m, "post").get("executor").is_none());
    let left = assert_ray_record(&m, "left", &address, "SUCCEEDED");
    assert_ray_record(&m, "right", &address, "SUCCEEDED");
    assert!(stage(&env.main_file(&id), "left").get("executor").is_none());
    // Byte-exact, streams apart.
    let log = stage_log(&env, &id, "02-left.ndjson");
    assert_eq!(
        stream(&log, "stdout", None),
        b"from prep\nL\xff\xfe\x00tail".to_vec()
    );
    assert_eq!(stream(&log, "stderr", None), b"left-err\n".to_vec());
    let log = stage_log(&env, &id, "03-right.ndjson");
    assert_eq!(stream(&log, "stdout", None), b"right\xc0\n".to_vec());
    assert_eq!(stream(&log, "stderr", None), b"right-err\n".to_vec());
    // Both Ray stages ran at once: the second started before the first ended.
    let events = read_lines(&env.run_dir(&id).join("events.jsonl"));
    let at = |event: &str, stage: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["payload"]["stage_id"] == stage)
            .unwrap_or_else(|| panic!("{event} {stage}"))
    };
    let first_end = at("step_completed", "left").min(at("step_completed", "right"));
    assert!(at("step_started", "left") < first_end && at("step_started", "right") < first_end);
    assert!(at("step_started", "post") > first_end);
    // Ray knows the job under the recorded id and says it succeeded.
    assert_eq!(job(&address, &left)["status"], "SUCCEEDED");
}

#[test]
fn a_failing_ray_stage_records_its_exit_code() {
    let Some(address) = head() else { return };
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
          {{"kind":"command","id":"fail","executor":{exec},"command":"echo oops >&2; exit 3"}},
          {{"kind":"command","id":"never","command":"touch never"}}]}}]}}"#,
        exec = ray(&address, ""),
    );
    let env = TestEnv::new().config(&config);
    let r = env.start("p", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let m = env.manifest(&r.run_id());
    let s = stage(&m, "fail");
    assert_eq!(s["status"], "failed");
    assert_eq!(s["exit_code"], 3);
    assert_eq!(s["summary"], "Exited with code 3 — oops");
    assert_eq!(m["status_detail"], "stage:fail:failed");
    assert_ray_record(&m, "fail", &address, "FAILED");
    let err = crate::harness::read_json(
        &env.path()
            .join(s["error_file"].as_str().expect("error file")),
    );
    assert_eq!(err["details"]["exit_code"], 3);
    assert_eq!(err["details"]["executor"]["kind"], "ray");
    assert!(!env.path().join("never").exists());
}

#[test]
fn retries_and_on_failure_apply_to_ray_stages_as_to_local_ones() {
    let Some(address) = head() else { return };
    // Two attempts, each its own job (`--1`, `--2`), both in the stage's log; `onFailure:
    // continue` lets the dependent run.
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
          {{"kind":"command","id":"flaky","executor":{exec},"command":"echo try; exit 3",
            "retries":{{"count":1,"delayMs":10}},"onFailure":"continue"}},
          {{"kind":"command","id":"after","command":"touch after","dependsOn":["flaky"]}}]}}]}}"#,
        exec = ray(&address, ""),
    );
    let env = TestEnv::new().config(&config);
    let r = env.start("p", &[]);
    let run_id = r.run_id();
    let m = env.manifest(&run_id);
    let s = stage(&m, "flaky");
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["attempts"], 2, "{s}");
    assert_eq!(s["exit_code"], 3);
    assert!(env.path().join("after").exists(), "{}", r.stderr);
    assert_eq!(stage(&m, "after")["status"], "succeeded");
    let mut js = jobs_of(&address, &run_id);
    js.sort();
    assert_eq!(
        js,
        [
            (format!("{run_id}--flaky--1"), "FAILED".to_owned()),
            (format!("{run_id}--flaky--2"), "FAILED".to_owned()),
        ]
    );
    let log = stage_log(&env, &run_id, "01-flaky.ndjson");
    let begins: Vec<&Value> = log.iter().filter(|l| l["type"] == "exec:begin").collect();
    assert_eq!(begins.len(), 2);
    for (n, b) in begins.iter().enumerate() {
        assert_eq!(b["attempt"], n + 1);
        let out = stream(&log, "stdout", b["correlation_id"].as_str());
        assert_eq!(out, b"try\n".to_vec(), "attempt {}", n + 1);
    }
}

#[test]
fn a_timeout_stops_the_ray_job() {
    let Some(address) = head() else { return };
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
          {{"kind":"command","id":"slow","timeoutMs":2000,"executor":{exec},"command":"echo started; sleep 300"}}]}}]}}"#,
        exec = ray(&address, ""),
    );
    let env = TestEnv::new()
        .config(&config)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "500");
    let t0 = Instant::now();
    let r = env.start("p", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
    let m = env.manifest(&r.run_id());
    let s = stage(&m, "slow");
    assert_eq!(s["summary"], "Timed out after 2000ms");
    assert_eq!(s["outcome"], "timed_out");
    // The job is over on the cluster, not left sleeping: the wrapper stopped it (exit 124).
    let sid = assert_ray_record(&m, "slow", &address, "FAILED");
    let j = job(&address, &sid);
    assert_eq!(j["driver_exit_code"], 124, "{j}");
}

/// Polls until `f` holds (or panics after `limit`).
fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The runner in the background, stdout and stderr piped.
fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runner")
}

/// Jobs of run `run_id` on the head, as `(submission_id, status)`.
fn jobs_of(address: &str, run_id: &str) -> Vec<(String, String)> {
    jobs(address)
        .into_iter()
        .filter_map(|j| {
            let sid = j["submission_id"].as_str()?.to_owned();
            sid.starts_with(&format!("{run_id}--"))
                .then(|| (sid, j["status"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

/// The run id once the run's directory exists.
fn wait_run_id(env: &TestEnv) -> String {
    let runs = env.path().join(".runs/0101/cli");
    wait_until(Duration::from_secs(30), "the run directory", || {
        std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some())
    });
    env.only_run_id()
}

#[test]
fn ctrl_c_stops_the_running_ray_jobs_and_cancels_the_run() {
    let Some(address) = head() else { return };
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","concurrency":2,"executor":{exec},"stages":[
          {{"kind":"command","id":"a","dependsOn":[],"command":"echo a; sleep 300"}},
          {{"kind":"command","id":"b","dependsOn":[],"command":"echo b; sleep 300"}},
          {{"kind":"command","id":"after","dependsOn":["a","b"],"command":"true"}}]}}]}}"#,
        exec = ray(&address, ""),
    );
    let env = TestEnv::new().config(&config);
    let child = spawn(&env, &["start", "p", "--format", "json"]);
    let run_id = wait_run_id(&env);
    wait_until(Duration::from_secs(120), "both jobs running", || {
        let js = jobs_of(&address, &run_id);
        js.len() == 2 && js.iter().all(|(_, s)| s == "RUNNING")
    });
    let t0 = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    let m = env.manifest(&run_id);
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["status_detail"], "run-canceled");
    for s in ["a", "b"] {
        assert_eq!(stage(&m, s)["outcome"], "cancelled", "{s}");
    }
    // Stopped on the cluster, not left running.
    let js = jobs_of(&address, &run_id);
    assert_eq!(js.len(), 2, "{js:?}");
    assert!(js.iter().all(|(_, s)| s == "STOPPED"), "{js:?}");
}

#[test]
fn kill_9_of_the_runner_then_resume_attaches_to_the_running_job() {
    let Some(address) = head() else { return };
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
          {{"kind":"command","id":"long","executor":{exec},"command":"echo before; sleep 12; echo after; echo err-after >&2"}},
          {{"kind":"command","id":"next","command":"echo next"}}]}}]}}"#,
        exec = ray(&address, ""),
    );
    let env = TestEnv::new().config(&config);
    let mut child = spawn(&env, &["start", "p", "--format", "json"]);
    let run_id = wait_run_id(&env);
    wait_until(Duration::from_secs(120), "the job running", || {
        jobs_of(&address, &run_id)
            .iter()
            .any(|(_, s)| s == "RUNNING")
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
    child.wait().expect("reap");
    let r = env.cli(["resume", "--run", &run_id, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = env.manifest(&run_id);
    assert_eq!(m["status"], "succeeded");
    let s = stage(&m, "long");
    assert_eq!(s["status"], "succeeded");
    assert_eq!(s["executor"]["attached"], true, "{s}");
    assert_eq!(s["attempts"], 1);
    // The attached attempt's record is whole (the package digest read back from the job).
    assert_ray_record(&m, "long", &address, "SUCCEEDED");
    // One submission on the cluster: attached, not submitted again.
    let js = jobs_of(&address, &run_id);
    assert_eq!(js, [(format!("{run_id}--long--1"), "SUCCEEDED".to_owned())]);
    // The attached attempt's output is complete (Ray replays the log from its start).
    let log = stage_log(&env, &run_id, "01-long.ndjson");
    let begins: Vec<&Value> = log.iter().filter(|l| l["type"] == "exec:begin").collect();
    let last = begins.last().expect("begin");
    assert_eq!(last["executor"]["attached"], true);
    let corr = last["correlation_id"].as_str();
    assert_eq!(stream(&log, "stdout", corr), b"before\nafter\n".to_vec());
    assert_eq!(stream(&log, "stderr", corr), b"err-after\n".to_vec());
}

#[test]
fn a_head_that_stops_mid_run_fails_the_stage_clearly_without_a_hang() {
    let Some(_) = head() else { return };
    let Some(head) = Head::start_own("lost") else {
        return;
    };
    let address = head.address.clone();
    let config = format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
          {{"kind":"command","id":"doomed","executor":{exec},"command":"echo up; sleep 300"}}]}}]}}"#,
        exec = ray(&address, ""),
    );
    let env = TestEnv::new().config(&config);
    let child = spawn(&env, &["start", "p", "--format", "json"]);
    let run_id = wait_run_id(&env);
    wait_until(Duration::from_secs(120), "the job running", || {
        jobs_of(&address, &run_id)
            .iter()
            .any(|(_, s)| s == "RUNNING")
    });
    // Stopped the way `ray stop` does it (SIGTERM, then SIGKILL after a grace), beside the run.
    let t0 = Instant::now();
    let stopper = std::thread::spawn(move || {
        head.stop();
        t0.elapsed()
    });
    let out = child.wait_with_output().expect("wait");
    let took = t0.elapsed();
    let stop_took = stopper.join().expect("stop");
    eprintln!(
        "the head took {stop_took:?} to stop; the runner ended {took:?} after the stop began"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    let m = env.manifest(&run_id);
    let s = stage(&m, "doomed");
    assert_eq!(s["status"], "failed");
    assert_eq!(m["status_detail"], "stage:doomed:ray-unreachable");
    let summary = s["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with(&format!("Ray unreachable at {address}: ")),
        "{summary}"
    );
    assert_eq!(s["outcome"], "lost");
}

#[test]
fn a_bad_executor_is_a_config_error_and_nothing_is_written() {
    // No head needed: validation happens before anything runs.
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"s","command":"true","executor":{"kind":"ray","numCpus":"two"}}]}]}"#,
    );
    let r = env.start("p", &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("pipeline `p`, stage `s`, field `executor.numCpus`: expected a number >= 0, found a string"),
        "{}",
        r.stderr
    );
    assert!(!env.runs_exists());
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","executor":{"kind":"ray"},"stages":[{"kind":"command","id":"s","command":"true"}]}]}"#)
        .env("CODEX_ORCHESTRATOR_RAY_ADDRESS", "not-a-url");
    let r = env.start("p", &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("CODEX_ORCHESTRATOR_RAY_ADDRESS: `not-a-url` is not an http:// address"),
        "{}",
        r.stderr
    );
    assert!(!env.runs_exists());
}

#[test]
fn an_unreachable_head_fails_the_stage_with_its_own_detail() {
    // Nothing listens on port 1: the stage fails at once, the run does not hang.
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","executor":{"kind":"ray","address":"http://127.0.0.1:1"},"stages":[{"kind":"command","id":"s","command":"true"}]}]}"#);
    let t0 = Instant::now();
    let r = env.start("p", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(t0.elapsed() < Duration::from_secs(30));
    let m = env.manifest(&r.run_id());
    assert_eq!(m["status_detail"], "stage:s:ray-unreachable");
    let summary = stage(&m, "s")["summary"]
        .as_str()
        .expect("summary")
        .to_owned();
    assert!(
        summary.starts_with("Ray unreachable at http://127.0.0.1:1: cannot connect"),
        "{summary}"
    );
    // The override names another address: it wins.
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","executor":{"kind":"ray","address":"http://127.0.0.1:1"},"stages":[{"kind":"command","id":"s","command":"true"}]}]}"#)
        .env("CODEX_ORCHESTRATOR_RAY_ADDRESS", "http://127.0.0.1:2");
    let r = env.start("p", &[]);
    let m = env.manifest(&r.run_id());
    assert_eq!(stage(&m, "s")["executor"]["address"], "http://127.0.0.1:2");
}

/// Where `.ci/ray-head.sh` is.
pub(crate) fn head_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/ray-head.sh")
}
