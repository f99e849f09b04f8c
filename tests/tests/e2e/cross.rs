//! Living beside the peer in one repository: each tool reads the other's runs; we never
//! resume (or kill) a run the peer is still working on; we resume a crashed peer run keeping
//! every key the peer wrote; and the peer's `exec` and `status --format json` outputs have no
//! key ours lacks (compared key by key on the same inputs).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{merged, TestEnv};
use crate::peer::{assert_has_peer_keys, peer, run, Out, Peer};

/// Keys of the peer's `exec` output that we do not write: token/cost metrics and memory
/// snapshots have no meaning for a shell command (README, "Deliberate differences").
const EXEC_NOT_OURS: &[&str] = &["payload.metrics", "payload.memory"];

fn peer_cli(p: &Peer, env: &TestEnv, args: &[&str]) -> Out {
    run(&p.bin, env.path(), env.path(), args, &[])
}

fn ours(env: &TestEnv, args: &[&str]) -> Out {
    run(
        Path::new(crate::harness::BIN),
        env.path(),
        env.path(),
        args,
        &[],
    )
}

const BAD: &str = r#"{"pipelines":[{"id":"bad","title":"Bad","stages":[
  {"kind":"command","id":"one","title":"Step one","command":"echo one"},
  {"kind":"command","id":"boom","title":"Step boom","command":"echo out; echo err >&2; exit 7"}]}]}"#;

/// The id of the newest run of task `0101` other than `except`.
fn newest_run(env: &TestEnv, except: &[&str]) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(env.path().join(".runs/0101/cli"))
        .expect("runs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| !except.contains(&id.as_str()))
        .collect();
    ids.sort();
    ids.pop().expect("a run")
}

#[test]
fn each_tool_reads_the_others_runs_and_status_has_the_peers_keys() {
    let Some(p) = peer("cross::each_tool_reads_the_others_runs") else {
        return;
    };
    let env = TestEnv::new().config(BAD);
    let mine = ours(&env, &["start", "bad", "--format", "json"]);
    assert_eq!(mine.code, 1, "{}", mine.stderr);
    let my_id = mine.json()["run_id"].as_str().expect("id").to_owned();
    let theirs = peer_cli(&p, &env, &["start", "bad", "--runtime-mode", "cli"]);
    assert_eq!(theirs.code, 1, "{}", theirs.stderr);
    let peer_id = newest_run(&env, &[&my_id]);
    // The peer reads ours.
    let read = peer_cli(&p, &env, &["status", "--run", &my_id, "--format", "json"]);
    assert_eq!(read.code, 0, "{}", read.stderr);
    let j = read.json();
    assert_eq!(
        (&j["status"], &j["status_detail"]),
        (&"failed".into(), &"stage:boom:failed".into())
    );
    let statuses: Vec<&str> = j["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| c["status"].as_str().expect("s"))
        .collect();
    assert_eq!(statuses, ["succeeded", "failed"]);
    // We read the peer's, with every key of the peer's own `status` (same run, same moment).
    let peer_view = peer_cli(&p, &env, &["status", "--run", &peer_id, "--format", "json"]).json();
    let our_view = ours(&env, &["status", "--run", &peer_id, "--format", "json"]);
    assert_eq!(our_view.code, 0, "{}", our_view.stderr);
    let our_view = our_view.json();
    assert_has_peer_keys(&peer_view, &our_view, &[], "status --format json");
    for k in [
        "status",
        "status_detail",
        "commands",
        "runtime_mode",
        "child_runs",
        "cloud_execution",
    ] {
        assert_eq!(our_view[k], peer_view[k], "{k}");
    }
    assert_eq!(our_view["activity"]["stale"], Value::Null);
    // And the same keys for one of our runs, as the peer shows it.
    let peer_on_ours = peer_cli(&p, &env, &["status", "--run", &my_id, "--format", "json"]).json();
    let ours_on_ours = ours(&env, &["status", "--run", &my_id, "--format", "json"]).json();
    assert_has_peer_keys(&peer_on_ours, &ours_on_ours, &[], "status of our run");
}

#[test]
fn exec_output_has_the_peers_keys() {
    let Some(p) = peer("cross::exec_output_has_the_peers_keys") else {
        return;
    };
    let env = TestEnv::new();
    let cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"];
    let with = |mode: &[&str], bin: &dyn Fn(&[&str]) -> Out| {
        let mut args = vec!["exec"];
        args.extend_from_slice(mode);
        args.extend_from_slice(&cmd);
        bin(&args)
    };
    let peer_run = |a: &[&str]| peer_cli(&p, &env, a);
    let our_run = |a: &[&str]| ours(&env, a);
    // --json compact: one line, the run:summary event.
    let (pj, oj) = (
        with(&["--json", "compact"], &peer_run),
        with(&["--json", "compact"], &our_run),
    );
    assert_eq!((pj.code, oj.code), (3, 3), "{}\n{}", pj.stderr, oj.stderr);
    assert_eq!(oj.stdout.lines().count(), 1);
    assert_eq!((pj.stderr.as_str(), oj.stderr.as_str()), ("", ""));
    assert_has_peer_keys(&pj.json(), &oj.json(), EXEC_NOT_OURS, "exec --json compact");
    // The default off a terminal and --jsonl: the same events in the same order, key by key.
    for mode in [&[][..], &["--jsonl"]] {
        let (pl, ol) = (with(mode, &peer_run), with(mode, &our_run));
        assert_eq!((pl.code, ol.code), (3, 3), "{mode:?}");
        let lines = |o: &Out| -> Vec<Value> {
            o.stdout
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect()
        };
        let (pv, ov) = (lines(&pl), lines(&ol));
        let types = |v: &[Value]| -> Vec<String> {
            v.iter()
                .map(|e| e["type"].as_str().expect("type").to_owned())
                .collect()
        };
        assert_eq!(types(&ov), types(&pv), "{mode:?}");
        for (theirs, mine) in pv.iter().zip(&ov) {
            assert_has_peer_keys(
                theirs,
                mine,
                EXEC_NOT_OURS,
                &format!("exec {mode:?} {}", theirs["type"]),
            );
        }
        let last = ov.last().expect("summary");
        assert_eq!(
            last["payload"]["outputs"],
            serde_json::json!({"stdout": "out\n", "stderr": "err\n"})
        );
    }
}

/// Waits until `f` holds (10 s at most).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The only run's manifest, once it records stage `index` (0-based) running.
fn wait_for_running(env: &TestEnv, index: usize) -> String {
    let mut id = String::new();
    wait_until("the peer's stage to run", || {
        let Ok(mut e) = std::fs::read_dir(env.path().join(".runs/0101/cli")) else {
            return false;
        };
        let Some(Ok(run)) = e.next() else {
            return false;
        };
        id = run.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(run.path().join("manifest.json")) else {
            return false;
        };
        serde_json::from_str::<Value>(&text)
            .is_ok_and(|m| m["commands"][index]["status"] == "running")
    });
    id
}

fn spawn_peer(p: &Peer, env: &TestEnv, args: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(&p.bin)
        .args(args)
        .current_dir(env.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Its own group: the crash test kills the peer (wrapper and runner) at once.
        .process_group(0)
        .spawn()
        .expect("spawn the peer")
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

#[test]
fn we_refuse_to_resume_a_live_peer_run_and_kill_nothing() {
    let Some(p) = peer("cross::we_refuse_to_resume_a_live_peer_run") else {
        return;
    };
    // Titles given: without them the peer writes records its own schema rejects.
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"slow","title":"Slow","stages":[
      {"kind":"command","id":"nap","title":"Nap","command":"echo $$ > nap.pid; sleep 3; echo done > nap.done"}]}]}"#);
    let mut runner = spawn_peer(&p, &env, &["start", "slow", "--runtime-mode", "cli"]);
    let id = wait_for_running(&env, 0);
    wait_until("the stage's pid", || env.path().join("nap.pid").is_file());
    let stage: i32 = std::fs::read_to_string(env.path().join("nap.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    let status = ours(&env, &["status", "--run", &id, "--format", "json"]).json();
    assert_eq!(status["status"], "in_progress");
    assert_eq!(
        status["activity"]["runner_alive"], true,
        "a fresh heartbeat: live"
    );
    assert_eq!(status["activity"]["abandoned"], false);
    let resume = ours(&env, &["resume", "--run", &id]);
    assert_eq!(resume.code, 3, "{}", resume.stderr);
    assert!(
        resume.stderr.contains("it is still running"),
        "{}",
        resume.stderr
    );
    assert!(alive(stage), "the peer's stage was left alone");
    let code = runner.wait().expect("peer").code();
    assert_eq!(code, Some(0));
    assert!(
        env.path().join("nap.done").is_file(),
        "the stage ran to its end"
    );
    let m = merged(&env.run_dir(&id).join("manifest.json"));
    assert_eq!(m["status"], "succeeded");
    assert_eq!(
        m["resume_events"],
        serde_json::json!([]),
        "nothing of ours recorded"
    );
}

/// Makes every sign of activity of run `id` `secs` seconds old, as if that much time passed
/// since its runner died.
fn age_run(env: &TestEnv, id: &str, secs: u64) {
    let dir = env.run_dir(id);
    let old = std::time::SystemTime::now() - Duration::from_secs(secs);
    let ts = humantime::format_rfc3339_millis(old).to_string();
    let path = dir.join("manifest.json");
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    m["heartbeat_at"] = ts.clone().into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).expect("json")).expect("write");
    std::fs::write(dir.join(".heartbeat"), format!("{ts}\n")).expect("write");
    let touched = std::process::Command::new("touch")
        .args(["-d", &ts])
        .arg(dir.join("runner.ndjson"))
        .status()
        .expect("touch");
    assert!(touched.success());
}

#[test]
fn we_resume_a_crashed_peer_run_keeping_every_peer_key() {
    let Some(p) = peer("cross::we_resume_a_crashed_peer_run") else {
        return;
    };
    // No titles: the peer leaves them out of its record; ours fills them in.
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"crashy","stages":[
      {"kind":"command","id":"first","command":"echo x >> first.count"},
      {"kind":"command","id":"second","command":"test -f fixed && exit 0; setsid sh -c 'echo $$ > o.tmp; mv o.tmp orphan.pid; exec sleep 30' & wait"}]}]}"#);
    let mut runner = spawn_peer(&p, &env, &["start", "crashy", "--runtime-mode", "cli"]);
    let id = wait_for_running(&env, 1);
    wait_until("the daemon's pid", || {
        env.path().join("orphan.pid").is_file()
    });
    let orphan: i32 = std::fs::read_to_string(env.path().join("orphan.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    // The peer dies with everything in its group; the daemon that left it survives.
    let group = nix::unistd::Pid::from_raw(-i32::try_from(runner.id()).expect("pid"));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL).expect("kill the peer");
    let _ = runner.wait();
    assert!(alive(orphan), "a survivor of the crash");
    // Fresh for 30 s after the crash, the run counts as live: let that time pass.
    let busy = ours(&env, &["resume", "--run", &id]);
    assert_eq!(busy.code, 3, "a fresh heartbeat: {}", busy.stderr);
    age_run(&env, &id, 60);
    let before = crate::harness::read_json(&env.run_dir(&id).join("manifest.json"));
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let out = ours(&env, &["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = crate::harness::read_json(&env.run_dir(&id).join("manifest.json"));
    assert_eq!(after["status"], "succeeded");
    assert!(
        !alive(orphan),
        "the peer stage's survivor (it carries the run's id) was killed"
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("first.count")).expect("count"),
        "x\n",
        "done stages are not run again"
    );
    // Every key the peer wrote that we do not write ourselves is still there, unchanged.
    let ours_env = TestEnv::new().config(BAD);
    let own = ours(&ours_env, &["start", "bad", "--format", "json"]);
    let own_keys: Vec<String> = crate::harness::read_json(
        &ours_env
            .run_dir(own.json()["run_id"].as_str().expect("id"))
            .join("manifest.json"),
    )
    .as_object()
    .expect("object")
    .keys()
    .cloned()
    .collect();
    let peer_only: Vec<&String> = before
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| !own_keys.contains(k))
        .collect();
    assert!(
        !peer_only.is_empty(),
        "the peer writes keys we do not: {own_keys:?}"
    );
    for k in &peer_only {
        assert_eq!(
            after[k.as_str()],
            before[k.as_str()],
            "peer key `{k}` kept as it was"
        );
    }
    for (i, c) in before["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .enumerate()
    {
        for (k, v) in c.as_object().expect("object") {
            if ![
                "status",
                "started_at",
                "completed_at",
                "exit_code",
                "summary",
                "log_path",
                "error_file",
            ]
            .contains(&k.as_str())
            {
                assert_eq!(&after["commands"][i][k], v, "command {i} key `{k}`");
            }
        }
    }
    crate::harness::assert_valid_record_files(&env.run_dir(&id));
    // And the peer still reads it.
    let read = peer_cli(&p, &env, &["status", "--run", &id, "--format", "json"]);
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert_eq!(read.json()["status"], "succeeded");
    // A succeeded (peer-written) run resumes with exit 0 and records it, running nothing.
    let again = ours(&env, &["resume", "--run", &id]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let m = merged(&env.run_dir(&id).join("manifest.json"));
    assert_eq!(m["resume_events"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        std::fs::read_to_string(env.path().join("first.count")).expect("count"),
        "x\n"
    );
}
