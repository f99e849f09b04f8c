//! `resume`, the run lock, `cancel`, and recovery from a crashed runner.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{assert_valid_manifest, read_lines, TestEnv};

/// `a` counts its runs; `b` fails until `fixed` exists; `c` counts its runs.
const FLAKY: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"a","command":"echo x >> a.count"},
  {"kind":"command","id":"b","command":"test -f fixed"},
  {"kind":"command","id":"c","command":"echo x >> c.count"}]}]}"#;

fn count(env: &TestEnv, f: &str) -> usize {
    std::fs::read_to_string(env.path().join(f))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn resume_after_a_failure_reruns_only_what_is_not_done() {
    let env = TestEnv::new().config(FLAKY);
    let first = env.start("p", &[]);
    assert_eq!(first.code, 1);
    let id = first.run_id();
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let out = env.cli([
        "resume",
        "--run",
        &id,
        "--actor",
        "ci",
        "--reason",
        "flake fixed",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(count(&env, "a.count"), 1, "succeeded stages are not re-run");
    assert_eq!(count(&env, "c.count"), 1);
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["status_detail"], serde_json::Value::Null);
    assert_eq!(m["commands"][1]["status"], "succeeded");
    assert_eq!(
        m["commands"][1]["error_file"],
        serde_json::Value::Null,
        "stale error pointer cleared"
    );
    assert_eq!(m["resume_events"][0]["actor"], "ci");
    assert_eq!(m["resume_events"][0]["reason"], "flake fixed");
    assert_eq!(m["resume_events"][0]["outcome"], "accepted");
    assert!(
        !m["summary"].as_str().unwrap_or_default().contains("failed"),
        "stale failure lines cleared: {}",
        m["summary"]
    );
    // events continue their numbering; metrics get a second line
    let events = read_lines(&env.run_dir(&id).join("events.jsonl"));
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        read_lines(&env.path().join(".runs/0101/metrics.json")).len(),
        2
    );
    // The run history follows the resume.
    let shown = env.cli(["runs", "show", &id, "--format", "json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(shown.json()["status"], "succeeded");
    // the stage log of b holds both attempts
    let log = read_lines(&env.run_dir(&id).join("commands/02-b.ndjson"));
    assert_eq!(log.iter().filter(|l| l["type"] == "exec:begin").count(), 2);
}

#[test]
fn resume_after_a_torn_events_line_appends_whole_events() {
    let env = TestEnv::new().config(FLAKY);
    let id = env.start("p", &[]).run_id();
    let path = env.run_dir(&id).join("events.jsonl");
    let before = std::fs::read_to_string(&path).expect("events");
    let last = read_lines(&path).last().expect("events")["seq"]
        .as_u64()
        .expect("seq");
    // A runner that died mid-write: a fragment, no newline.
    let torn = r#"{"schema_version":1,"seq":99,"tim"#;
    std::fs::write(&path, format!("{before}{torn}")).expect("tear");
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&path).expect("events");
    let after = text
        .strip_prefix(&before)
        .and_then(|t| t.strip_prefix(torn))
        .and_then(|t| t.strip_prefix('\n'))
        .unwrap_or_else(|| panic!("the fragment stays on a line of its own:\n{text}"));
    let appended: Vec<serde_json::Value> = after
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a whole event ({e}): {l}")))
        .collect();
    assert_eq!(appended[0]["event"], "run_started", "{after}");
    assert_eq!(
        appended[0]["seq"],
        last + 1,
        "seq continues from the last whole line"
    );
    assert_eq!(appended.last().expect("events")["event"], "run_completed");
}

#[test]
fn resume_still_failing_exits_1() {
    let env = TestEnv::new().config(FLAKY);
    let id = env.start("p", &[]).run_id();
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_eq!(m["status"], "failed");
    assert_eq!(
        m["summary"], "Stage 'b' failed with exit code 1.",
        "one line, not repeated"
    );
    assert_eq!(count(&env, "a.count"), 1);
}

#[test]
fn token_mismatch_is_a_conflict_and_writes_nothing() {
    let env = TestEnv::new().config(FLAKY);
    let id = env.start("p", &[]).run_id();
    let before = std::fs::read(env.run_dir(&id).join("manifest.json")).expect("read");
    let out = env.cli(["resume", "--run", &id, "--token", "nope"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stderr.trim(), "error: Resume token mismatch.");
    assert_eq!(
        std::fs::read(env.run_dir(&id).join("manifest.json")).expect("read"),
        before
    );
    let token = std::fs::read_to_string(env.run_dir(&id).join(".resume-token")).expect("token");
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    assert_eq!(env.cli(["resume", "--run", &id, "--token", &token]).code, 0);
}

#[test]
fn resuming_a_succeeded_run_is_recorded_and_runs_nothing() {
    // The peer's behaviour: exit 0, the resume recorded with its actor and reason, the events
    // `run_started` .. `run_completed` appended, no stage run again.
    let env = TestEnv::new().config(FLAKY);
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let id = env.start("p", &[]).run_id();
    let runs_before = std::fs::read_to_string(env.path().join("a.count")).expect("count");
    let out = env.cli([
        "resume", "--run", &id, "--actor", "alice", "--reason", "re-check",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with(&format!("Run resumed: {id}\nStatus: succeeded\n")),
        "{}",
        out.stdout
    );
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded");
    let ev = &m["resume_events"][0];
    assert_eq!(
        (&ev["actor"], &ev["reason"], &ev["outcome"]),
        (&"alice".into(), &"re-check".into(), &"accepted".into())
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("a.count")).expect("count"),
        runs_before,
        "no stage ran again"
    );
    let events = read_lines(&env.run_dir(&id).join("events.jsonl"));
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    let n = names.len();
    assert_eq!(
        &names[n - 2..],
        ["run_started", "run_completed"],
        "{names:?}"
    );
    assert_eq!(events[n - 1]["payload"]["status"], "succeeded");
}

const SLOW: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"slow","command":"echo x >> slow.count; test -f fixed || exit 1; sleep 0.5"}]}]}"#;

#[test]
fn concurrent_resumes_exactly_one_proceeds() {
    let env = TestEnv::new().config(SLOW);
    for round in 0..20 {
        let _ = std::fs::remove_file(env.path().join("fixed"));
        let id = env.start("p", &[]).run_id();
        std::fs::write(env.path().join("fixed"), "").expect("fix");
        let kids: Vec<_> = (0..2)
            .map(|_| {
                env.command(["resume", "--run", &id])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let outs: Vec<_> = kids
            .into_iter()
            .map(|k| k.wait_with_output().expect("wait"))
            .collect();
        let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
        // The refused one names the winner: it may read the lock file in the instant between
        // the winner taking the lock and writing its pid, and must wait for the pid then.
        for o in outs.iter().filter(|o| o.status.code() == Some(3)) {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let pid = stderr
                .split("locked by a running runner (pid ")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .map(str::to_owned)
                .unwrap_or_default();
            assert!(
                !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
                "round {round}: the holder is named: {stderr}"
            );
        }
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [0, 3],
            "round {round}: one resume runs, the other is refused: {codes:?}"
        );
        assert_eq!(
            env.manifest(&id)["resume_events"]
                .as_array()
                .expect("events")
                .len(),
            1
        );
    }
    assert_eq!(
        count(&env, "slow.count"),
        40,
        "each run's stage ran once at start and once in its one resume"
    );
}

#[test]
fn a_running_run_is_locked() {
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"s","command":"touch started; sleep 3"}]}]}"#);
    let child = env
        .command(["start", "p", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while !env.path().join("started").exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = std::fs::read_dir(env.path().join(".runs/0101/cli"))
        .expect("ls")
        .flatten()
        .next()
        .expect("run")
        .file_name()
        .to_string_lossy()
        .into_owned();
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pid {}", child.id())),
        "names the holder: {}",
        out.stderr
    );
    // cancel from another terminal
    let c = env.cli(["cancel", "--run", &id]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(143));
    let m = env.manifest(&id);
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["status_detail"], "run-canceled");
}

#[test]
fn crashed_runner_is_reported_and_resume_kills_its_survivors() {
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"s","command":"test -f resumed && exit 0; sleep 60 & echo $! > c.tmp; mv c.tmp child.pid; wait"}]}]}"#);
    // The first runner joins its own cgroup: its stages' survivors stay in it after kill -9,
    // and the cgroup must be empty once resume has dealt with them.
    let cgroup = crate::harness::Cgroup::new("crash");
    let mut child = match &cgroup {
        Some(cg) => cg.wrap(&env, &["start", "p"]),
        None => env.command(["start", "p"]),
    };
    let mut child = child
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while !env.path().join("child.pid").exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Wait until the stage's process is durable in the manifest: a runner killed before that
    // point leaves nothing a resume could identify.
    let run_dir = loop {
        let found = std::fs::read_dir(env.path().join(".runs/0101/cli"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path());
        if let Some(dir) = found {
            // The process record is an extension field: it lives in the sidecar.
            let text = std::fs::read_to_string(dir.join("manifest.ext.json")).unwrap_or_default();
            if text.contains("\"pgid\"") {
                break dir;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process recorded in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(run_dir);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill -9 the runner");
    let _ = child.wait();
    let id = std::fs::read_dir(env.path().join(".runs/0101/cli"))
        .expect("ls")
        .flatten()
        .next()
        .expect("run")
        .file_name()
        .to_string_lossy()
        .into_owned();
    let survivor: i32 = std::fs::read_to_string(env.path().join("child.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        kill(Pid::from_raw(survivor), None).is_ok(),
        "the stage's grandchild survived the runner"
    );
    let st = env.cli(["status", "--run", &id, "--format", "json"]).json();
    assert_eq!(st["status"], "in_progress");
    assert_eq!(st["activity"]["abandoned"], true);
    assert_eq!(st["activity"]["runner_alive"], false);
    std::fs::write(env.path().join("resumed"), "").expect("w");
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(100));
    let state = std::fs::read_to_string(format!("/proc/{survivor}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or_default()
                .trim()
                .chars()
                .next()
                .unwrap_or('?')
        })
        .unwrap_or('X');
    assert!(
        state == 'X' || state == 'Z',
        "survivor killed (state {state})"
    );
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "succeeded");
    if let Some(cg) = &cgroup {
        assert!(
            !cg.populated(),
            "no process of the crashed run is left after resume"
        );
    }
}

/// `start p` in the background, output discarded.
fn spawn_runner(env: &TestEnv) -> std::process::Child {
    env.command(["start", "p"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn")
}

/// The pid a stage wrote to `file` (written to a temp name and renamed, so it is whole).
fn wait_for_pid(env: &TestEnv, file: &str) -> i32 {
    let start = Instant::now();
    while !env.path().join(file).exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "{file} in time");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::read_to_string(env.path().join(file))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid")
}

/// Waits until run `id`'s runner.ndjson has the `exec:process` record of stage `index`. (The
/// stage's own output can appear a few microseconds before the runner logs its group; tests
/// of the group records kill the runner only after that.)
fn wait_for_process_record(env: &TestEnv, id: &str, index: u64) {
    let start = Instant::now();
    let log = env.run_dir(id).join("runner.ndjson");
    let logged = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["type"] == "exec:process" && l["index"] == index)
    };
    while !logged() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "exec:process logged"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `kill -9` of a runner, reaped.
fn kill_runner(mut runner: std::process::Child) {
    kill(Pid::from_raw(runner.id() as i32), Signal::SIGKILL).expect("kill -9 the runner");
    let _ = runner.wait();
}

/// True once `pid` is gone or a zombie, within two seconds.
fn gone_soon(pid: i32) -> bool {
    (0..100).any(|_| {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().and_then(|r| r.trim().chars().next()));
        let gone = matches!(state, None | Some('Z') | Some('X'));
        if !gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        gone
    })
}

/// The manifest of the one run of `pipeline` under `.runs/0101/cli`, once `ready` holds.
fn wait_for_run(env: &TestEnv, pipeline: &str, ready: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        for e in std::fs::read_dir(env.path().join(".runs/0101/cli"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(e.path().join("manifest.json")).unwrap_or_default();
            let top = serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|m| m["pipeline_id"] == pipeline);
            if top && ready(&text) {
                return e.file_name().to_string_lossy().into_owned();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "run of {pipeline} in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resume_after_a_crash_inside_a_subpipeline_resumes_the_child_run() {
    let env = TestEnv::new().config(r#"{"pipelines":[
      {"id":"p","stages":[
        {"kind":"command","id":"a","command":"echo x >> a.count"},
        {"kind":"subpipeline","id":"sub","pipeline":"q"},
        {"kind":"command","id":"c","command":"echo x >> c.count"}]},
      {"id":"q","stages":[
        {"kind":"command","id":"q1","command":"echo x >> q1.count"},
        {"kind":"command","id":"q2","command":"test -f resumed && exit 0; sleep 60 & echo $! > c.tmp; mv c.tmp child.pid; wait"}]}]}"#)
        // Strict: each stage's end is durable before the next starts, so nothing that had
        // succeeded may run again. (Batched, `q1`'s end may still be unwritten when the
        // runner dies; see crash_points.rs for what that mode promises.)
        .env("CODEX_ORCHESTRATOR_DURABILITY", "strict");
    let runner = spawn_runner(&env);
    let survivor = wait_for_pid(&env, "child.pid");
    let child_id = wait_for_run(&env, "q", |_| true);
    let parent_id = wait_for_run(&env, "p", |_| true);
    wait_for_process_record(&env, &child_id, 2);
    kill_runner(runner);
    std::fs::write(env.path().join("resumed"), "").expect("w");
    let out = env.cli(["resume", "--run", &parent_id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("killed 1 process group"),
        "the survivor inside the child run was found: {}",
        out.stderr
    );
    assert!(
        gone_soon(survivor),
        "the crashed child run's survivor {survivor} was killed"
    );
    // Nothing that had succeeded ran twice, inside the child run or outside it.
    assert_eq!(count(&env, "a.count"), 1);
    assert_eq!(count(&env, "q1.count"), 1);
    assert_eq!(count(&env, "c.count"), 1);
    let parent = env.manifest(&parent_id);
    assert_valid_manifest(&parent);
    assert_eq!(parent["status"], "succeeded");
    assert_eq!(
        parent["child_runs"].as_array().expect("child_runs").len(),
        1
    );
    assert_eq!(parent["child_runs"][0]["run_id"], child_id.as_str());
    assert_eq!(parent["child_runs"][0]["status"], "succeeded");
    assert_eq!(parent["commands"][1]["sub_run_id"], child_id.as_str());
    let child = env.manifest(&child_id);
    assert_valid_manifest(&child);
    assert_eq!(
        child["status"], "succeeded",
        "the child run no longer hangs in_progress"
    );
    assert_eq!(child["resume_events"].as_array().expect("events").len(), 1);
    assert_eq!(child["commands"][0]["status"], "succeeded");
    assert_eq!(child["commands"][1]["status"], "succeeded");
    let runs = std::fs::read_dir(env.path().join(".runs/0101/cli"))
        .expect("ls")
        .count();
    assert_eq!(runs, 2, "no new child run was created");
}

/// The `runtime_*` keys of a `--format json` object.
fn runtime_keys(v: &serde_json::Value) -> Vec<String> {
    let obj = v.as_object().expect("an object");
    obj.keys()
        .filter(|k| k.starts_with("runtime_"))
        .cloned()
        .collect()
}

#[test]
fn resume_re_resolves_the_runtime_mode_and_records_it() {
    let env = TestEnv::new().config(FLAKY);
    let first = env.start("p", &[]);
    assert_eq!(first.code, 1);
    let id = first.run_id();
    let m = env.manifest(&id);
    assert_eq!(
        (&m["runtime_mode_requested"], &m["runtime_mode_source"]),
        (&"cli".into(), &"default".into())
    );
    let start_keys = runtime_keys(&first.json());
    assert_eq!(start_keys.len(), 4, "{start_keys:?}");

    // The flag wins over the recorded request, and the decision is recorded.
    let out = env.cli([
        "resume",
        "--run",
        &id,
        "--runtime-mode",
        "appserver",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 1, "b still fails: {}", out.stderr);
    assert!(
        out.stderr.contains("runtime mode `appserver`"),
        "{}",
        out.stderr
    );
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["runtime_mode_requested"], "appserver");
    assert_eq!(m["runtime_mode"], "cli");
    assert_eq!(m["runtime_provider"], "CliRuntimeProvider");
    assert_eq!(m["runtime_fallback"]["occurred"], true);
    assert_eq!(m["runtime_fallback"]["from_mode"], "appserver");
    assert_eq!(m["runtime_mode_source"], "flag");
    let json = out.json();
    assert_eq!(
        runtime_keys(&json),
        start_keys,
        "same keys as start's object"
    );
    for k in &start_keys {
        assert_eq!(json[k], m[k], "`{k}` as recorded");
    }

    // An invalid value from the environment is a usage error; nothing is written.
    let bad = env
        .command(["resume", "--run", &id])
        .env("CODEX_ORCHESTRATOR_RUNTIME_MODE", "bogus")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CODEX_ORCHESTRATOR_RUNTIME_MODE"));
    assert_eq!(
        env.manifest(&id)["resume_events"].as_array().map(Vec::len),
        Some(1)
    );

    // Nothing given: the recorded request stands.
    assert_eq!(env.cli(["resume", "--run", &id]).code, 1);
    let m = env.manifest(&id);
    assert_eq!(m["runtime_mode_requested"], "appserver");
    assert_eq!(m["runtime_mode_source"], "manifest");

    // The environment beats the recorded request.
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let ok = env
        .command(["resume", "--run", &id])
        .env("CODEX_ORCHESTRATOR_RUNTIME_MODE", " CLI ")
        .output()
        .expect("run");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let m = env.manifest(&id);
    assert_eq!(m["runtime_mode_requested"], "cli");
    assert_eq!(m["runtime_mode_source"], "env");
    assert_eq!(m["runtime_fallback"]["occurred"], false);
}

#[test]
fn resume_finds_survivors_the_manifest_had_not_recorded_yet() {
    // The runner dies right after the spawn, before the stage's start reaches the manifest (it
    // is deferred to share a write): the process group is in runner.ndjson from the spawn on.
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"s","command":"test -f resumed && exit 0; sleep 60 & echo $! > c.tmp; mv c.tmp child.pid; wait"}]}]}"#);
    let runner = spawn_runner(&env);
    let survivor = wait_for_pid(&env, "child.pid");
    let id = wait_for_run(&env, "p", |_| true);
    wait_for_process_record(&env, &id, 1);
    kill_runner(runner);
    let recorded = env.manifest(&id)["commands"][0].get("process").is_some();
    if recorded {
        // A slow machine got the deferred write out first; the log path is then untested here.
        eprintln!("note: the manifest recorded the process before the kill");
    }
    assert!(
        kill(Pid::from_raw(survivor), None).is_ok(),
        "it survived the runner"
    );
    std::fs::write(env.path().join("resumed"), "").expect("w");
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("killed 1 process group"),
        "{}",
        out.stderr
    );
    assert!(gone_soon(survivor), "survivor {survivor} killed by resume");
}

#[test]
fn a_cancel_in_control_json_stops_the_run_between_stages_once() {
    // Stage b writes the peer's control.json cancel request into its own run directory.
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"a","command":"echo x >> a.count"},
      {"kind":"command","id":"b","command":"printf '{\"control_seq\":1,\"latest_action\":{\"action\":\"cancel\"}}' > \"$CODEX_ORCHESTRATOR_RUN_DIR/control.json\""},
      {"kind":"command","id":"c","command":"echo x >> c.count"}]}]}"#);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 143, "{}", out.stderr);
    assert!(out.stderr.contains("cancel requested in"), "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["status_detail"], "run-canceled");
    assert_eq!(m["summary"], "Run cancellation requested in control.json.");
    assert_eq!(m["commands"][1]["status"], "succeeded");
    assert_eq!(m["commands"][2]["status"], "pending");
    assert_eq!(count(&env, "c.count"), 0);
    let events = read_lines(&env.run_dir(&id).join("events.jsonl"));
    assert!(events
        .iter()
        .any(|e| e["event"] == "run_canceled" && e["payload"]["requested_by"] == "control.json"));
    // The request was for that runner: a resume is not cancelled by it again.
    let again = env.cli(["resume", "--run", &id]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(count(&env, "a.count"), 1);
    assert_eq!(count(&env, "c.count"), 1);
}

#[test]
fn resume_kills_a_setsid_daemon_that_left_the_stage_group() {
    // A daemon outside the stage's process group: no group signal reaches it, but it carries
    // the run's CODEX_ORCHESTRATOR_RUN_ID, which resume looks for. It writes its pid only once
    // it has its own session.
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"s","command":"test -f resumed && exit 0; setsid sh -c 'echo $$ > d.tmp; mv d.tmp daemon.pid; exec sleep 60' & wait"}]}]}"#);
    let runner = spawn_runner(&env);
    let daemon = wait_for_pid(&env, "daemon.pid");
    let id = wait_for_run(&env, "p", |_| true);
    wait_for_process_record(&env, &id, 1);
    kill_runner(runner);
    let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).expect("daemon alive");
    let sid_differs = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(3))
        .is_some_and(|sid| sid == daemon.to_string());
    assert!(sid_differs, "the daemon leads its own session: {stat}");
    std::fs::write(env.path().join("resumed"), "").expect("w");
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("found by CODEX_ORCHESTRATOR_RUN_ID"),
        "{}",
        out.stderr
    );
    assert!(gone_soon(daemon), "daemon {daemon} killed by resume");
}
